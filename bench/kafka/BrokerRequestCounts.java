// Prints the requests a Kafka broker has served since it started, by type
// ("Fetch 10765"), from its RequestsPerSec meters' counts over JMX. Run with
// `java BrokerRequestCounts.java PORT` (a single-file program, JDK 11+);
// bench/broker_requests.sh opens the port and takes the differences.
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class BrokerRequestCounts {
  public static void main(String[] args) throws Exception {
    JMXServiceURL url = new JMXServiceURL("service:jmx:rmi:///jndi/rmi://127.0.0.1:" + args[0] + "/jmxrmi");
    try (JMXConnector connector = JMXConnectorFactory.connect(url)) {
      MBeanServerConnection server = connector.getMBeanServerConnection();
      Map<String, Long> counts = new TreeMap<>();
      // One meter per request type and API version: summed by type.
      ObjectName meters = new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*");
      for (ObjectName meter : server.queryNames(meters, null)) {
        long count = ((Number) server.getAttribute(meter, "Count")).longValue();
        counts.merge(meter.getKeyProperty("request"), count, Long::sum);
      }
      counts.forEach((type, count) -> System.out.println(type + " " + count));
    }
  }
}
