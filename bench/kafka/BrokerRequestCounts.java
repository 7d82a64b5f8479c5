// Prints the requests a Kafka broker has served since it started, by type
// ("Fetch 10765"), from its RequestsPerSec meters. Run with
// `java BrokerRequestCounts.java PID` (a single-file program; needs a JDK
// for jdk.attach). It attaches to the broker's JVM, which must run as the
// same user, and reads the meters through the JVM's local management
// agent: no port is opened, and only that user can reach it. Kafka counts
// every fetch twice, under Fetch and under FetchConsumer or FetchFollower;
// bench/broker_requests.sh prints them as they come.
import com.sun.tools.attach.VirtualMachine;
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class BrokerRequestCounts {
  public static void main(String[] args) throws Exception {
    VirtualMachine broker = VirtualMachine.attach(args[0]);
    String address;
    try {
      address = broker.startLocalManagementAgent();  // the running one's when already started
    } finally {
      broker.detach();
    }
    try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
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
